"""Every retry policy and timeout the workflows use, in one place.

Infrastructure trouble (the database or Stripe down, a worker killed) is retried until it
passes, with backoff: a half-done money movement must not be abandoned. An answer that can never
change never reaches these policies' retries: activities raise business refusals, data errors
and Stripe's refusals non-retryable (activities.support, activities.redemption), so the first
one ends the activity and the workflow decides (pass it on, compensate, or raise an alert). Where
an outside party may stay away for long (Stripe), the retries are bounded in time as well."""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy

# Until it passes: every step that moves points or money, and every compensation.
UNTIL_DONE = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30)
)
ACTIVITY_TIMEOUT = timedelta(seconds=30)

# Local activities (the checkout's hold and PaymentIntent, and its settlement in saga version 2)
# run inside a workflow task; a short timeout keeps a stuck one from holding the task open.
LOCAL_TIMEOUT = timedelta(seconds=10)
# Settlement tries locally twice, then goes on as an ordinary activity (workflows.redemption).
LOCAL_TRIES = RetryPolicy(initial_interval=timedelta(milliseconds=500), maximum_attempts=2)
# The checkout's PaymentIntent (saga version 3): retried while the booking service waits for
# the redeem answer, a few times over about 12 seconds (each try within LOCAL_TIMEOUT); then the
# hold is released and the redeem answers 503. (Counted in tries, not bounded by a
# schedule-to-close timeout, which a local activity's retries inside one workflow task outlast.)
PAYMENT_SETUP = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    maximum_interval=timedelta(seconds=4),
    maximum_attempts=6,
)
# Cancelling the PaymentIntent is retried until the hold's expiry plus the payment grace
# (REDEMPTION_PAYMENT_GRACE_SECONDS); a saga that gets there late still tries for this long.
PAYMENT_CANCEL_AT_LEAST = timedelta(seconds=10)

# A voucher purchase is answered while the customer waits: its steps retry sooner (still until
# they pass), its notification only briefly (the outbox keeps an undelivered one), and its code
# is issued a few times over, then the purchase is undone rather than left hanging.
VOUCHER_STEPS = RetryPolicy(
    initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=10)
)
VOUCHER_NOTIFY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    maximum_interval=timedelta(seconds=1),
    maximum_attempts=3,
)
ISSUE_VOUCHER = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    maximum_interval=timedelta(seconds=2),
    maximum_attempts=4,
)
VOUCHER_TIMEOUT = timedelta(seconds=10)

# Notifications: the outbox keeps what could not be delivered, so a notification service that
# stays down never stalls a saga or an evaluation. Above the client's own 10 s timeout.
NOTIFY_TIMEOUT = timedelta(seconds=15)
NOTIFY_FEW_TIMES = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=20),
    maximum_attempts=5,
)

# Tier evaluation: each batch is one transaction, retried until it passes (as is the snapshot
# of the ladder it starts with, which counts every wallet). A batch's notifications go out a few
# at a time, each within the client's 10 s, and are tried NOTIFY_FEW_TIMES.
BATCH_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=60)
)
BATCH_TIMEOUT = timedelta(minutes=5)
EVALUATION_START_TIMEOUT = timedelta(minutes=2)
BATCH_NOTIFY_TIMEOUT = timedelta(minutes=2)

# Points expiry: each batch posts one expiry per lot (each its own statement, idempotent per
# lot), retried until it passes. It heartbeats after every posting, so a batch whose worker died
# is retried on another within the input's heartbeat timeout rather than after the whole
# timeout; a reminder batch is one transaction.
EXPIRY_BATCH_TIMEOUT = timedelta(minutes=10)
EXPIRY_START_TIMEOUT = timedelta(minutes=2)

# The invariant check reads the whole ledger; a failing one is worth a few tries, not more.
INVARIANT_CHECK = RetryPolicy(maximum_attempts=3)
INVARIANT_CHECK_TIMEOUT = timedelta(minutes=5)

# Reconciliation: each batch reads the ledger, asks Stripe (or Temporal) about up to a batch of
# rows and records its findings; retried until it passes (BATCH_RETRY), like tier batches.
RECONCILE_BATCH_TIMEOUT = timedelta(minutes=5)
