"""Talking IMAP: connections, capabilities, folder listing and message fetches. No Django."""
