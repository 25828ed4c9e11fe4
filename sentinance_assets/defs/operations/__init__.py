"""Operating the service: the daily retention cleanup and the operator notifications."""
