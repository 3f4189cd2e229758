"""X-ray / non-intrusive inspection (NII) scanner links: scans dropped in a folder."""
