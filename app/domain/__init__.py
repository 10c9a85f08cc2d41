"""The domain: customers, conversations, CRM, merges, suggestions, handles, access, agents. Imports only app.infra."""
