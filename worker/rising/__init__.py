"""Rising complaints' counting (issue 22): how many unhappy answers' comments have each term, per window.

counts.py   TermWindow (one partition's counts for one window, bounded), PartitionTerms (a partition this worker
            owns), TermState (every partition's latest, read from the state topic; the owned ones counted here)

The rule (when a term rises) and its wording are themes/emerging.py's; judging the current window and posting each
rising term once is loop/emerging.py's. The counts stay exact across crashes and replicas the way the metric
partials do (docs/metrics.md, "Why the figures stay exact across crashes and replicas").
"""

from .counts import KEPT, MAX_TERMS, SAMPLES, PartitionTerms, Sample, TermState, TermWindow, Totals

__all__ = ["KEPT", "MAX_TERMS", "SAMPLES", "PartitionTerms", "Sample", "TermState", "TermWindow", "Totals"]
