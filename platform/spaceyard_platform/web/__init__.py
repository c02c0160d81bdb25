"""Server-rendered pages (Jinja2) with light progressive enhancement; every asset is served locally."""
