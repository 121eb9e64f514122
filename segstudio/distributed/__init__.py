"""Scale-out engines for the CLI. Ray is an optional extra (``segstudio[ray]``), imported only inside
the functions that run a job, never by the desktop app."""
