"""`chainrisk serve`: the long-running service. The entry point is `chainrisk.serve.service.run_service`."""
