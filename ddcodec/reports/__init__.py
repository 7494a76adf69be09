"""Reports built from the verbs: the rate-utility curve, its plot, the demo, packed baselines."""
