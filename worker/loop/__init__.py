"""The consumer loop: consume → validate → evaluate → act → commit, read top to bottom in app.py.

- app.py: `Worker`, the loop itself;
- startup.py: rules, templates, routes and metric rules loaded and checked together before the first event;
- rebalance.py: settle and commit before partitions move, restore after (`Membership`);
- reload.py: hot reload of rules and templates between batches;
- metricalerts.py: a metric rule's firing posted once;
- emerging.py: rising complaints: the terms of unhappy comments counted, the current window judged, each rising term posted once.
"""

from .app import Rulebook, Tables, Worker
from .emerging import RisingComplaints
from .metricalerts import MetricAlerts
from .reload import Loaded, Reloader
from .startup import load_checked, make_router

__all__ = ["Loaded", "MetricAlerts", "Reloader", "RisingComplaints", "Rulebook", "Tables", "Worker", "load_checked", "make_router"]
