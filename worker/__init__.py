"""feedback-worker: customer-feedback events -> YAML rules -> HEARD follow-up tasks and Slack alerts."""

__version__ = "0.1.0"
