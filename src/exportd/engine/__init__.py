"""Running exports: the in-process worker pool (and, scaled out, Celery workers)."""
