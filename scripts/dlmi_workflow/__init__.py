"""dlmi_workflow: the workflow support of dlmi-workflow (config checks, BIDS names, provenance, run logs,
planning, cluster profile checks, import-closure hashing, Snakemake's scheduler).

It may import `dlmi`; `dlmi` never imports it. No rule output depends on it, so editing it reruns nothing.
"""
