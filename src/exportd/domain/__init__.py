"""The domain core: job states, events, options and errors. No web, no database."""
