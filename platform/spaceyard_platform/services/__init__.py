"""The domain service layer: what the Hub API (``api/``) and the web pages (``web/``) both call, never the
reverse. Services check access, validate input and write the store (``db``); they know nothing of HTTP."""
