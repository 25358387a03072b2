"""Events in and out over Kafka: the booking and payment event consumer (streams.consumer) and
the outbox relay (streams.relay), both processes of their own."""
