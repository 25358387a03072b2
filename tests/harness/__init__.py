"""The one harness every test package uses (fixtures in tests/conftest.py):

- api: the API in process (`api`) or under uvicorn with localstripe's webhooks (`live_api`),
  with tokens for the three kinds of caller (Auth);
- workers: the worker built as worker.py builds it, in process or as killable processes;
- wallets: a wallet with a history in one line (`await make_wallet(1000, spent=200)`);
- receiver: a notification service on a local port;
- histories: saved workflow histories for the replay tests;
- waits: bounded waits, so a stuck workflow fails its test instead of hanging the run."""
