"""NHS-number scenario explorer: re-record the synthetic population under identifier levers, re-link, measure
(simulate, capture), or model the gain on real data from measured completeness (model); scenario.py reports."""
