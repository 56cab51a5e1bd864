"""The data channel: which database is in use, the user data folder, and `compat data update`."""
