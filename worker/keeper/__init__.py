"""The keeper of follow-up tasks: one worker applies every task action, in order, and says so in Slack.

- keeper.py: `Keeper`, the owner of TASK_ACTIONS_TOPIC's one partition, applies actions and runs the SLA timers;
- card.py: after every change, the task's alert card updated in place and a line in its thread;
- notes.py: escalations and reopenings, said in the alert's thread;
- rootcauses.py: the root-cause digest, posted once a period has ended;
- desk.py: `TaskDesk`, working tasks from outside the loop (the CLI, the demo).

The task model itself (HEARD steps, the transition table, policies) is `worker.tasks`, below this.
"""

from .desk import WAIT_S, TaskDesk, followup_records
from .keeper import Keeper

__all__ = ["WAIT_S", "Keeper", "TaskDesk", "followup_records"]
