"""Everything that talks to the Hub or reads its local cache."""
