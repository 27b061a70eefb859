"""What every command-line entry point shares (leaderpool-cli, leaderpool-worker, the chaos runner)."""
