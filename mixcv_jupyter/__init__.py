"""mixcv_jupyter: the Jupyter front end of mixcv (magic, widgets, live dashboard)."""
