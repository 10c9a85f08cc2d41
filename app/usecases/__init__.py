"""What the product does: ingest (the one inbound door), the outbox, outgoing webhooks, pollers. Imports app.domain and app.infra."""
