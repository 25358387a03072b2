"""The service's infrastructure every feature uses: settings, database engine, errors, Temporal
connection and search attributes, Stripe client, text limits, the event loop."""
