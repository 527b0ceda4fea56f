"""dulwich on the ref store: a RefsContainer, open_repo and a server Backend."""
