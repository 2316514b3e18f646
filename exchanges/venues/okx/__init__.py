"""OKX (API v5; Global, EEA and US sites): signing, errors, client, sandbox and venue."""
