"""Exit codes of every `feedback-worker` command: a contract for scripts and CI."""

EXIT_OK = 0  # done
EXIT_FAILED = 1  # the work failed: a rule test failed, Kafka unreachable, an action refused
EXIT_USAGE = 2  # the command line or its input is wrong: bad settings, rules, arguments
