"""The dashboard's widgets, one module per screen area. They draw; they never read files."""
