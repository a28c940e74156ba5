"""IMAP ⇄ database: folders, messages, flags, bodies. Tasks in tasks.py stay thin."""
