# The output folder as a BIDS derivative dataset: dataset_description.json at its top. The code version is
# read inside the job (not a param), so a new commit alone re-runs nothing; each output's .prov.json record
# holds the version that made it.


rule describe_dataset:
    output:
        description=study("dataset_description.json"),
    log:
        logfile("describe_dataset", subject=False),
    benchmark:
        benchfile("describe_dataset", subject=False)
    conda:
        f"{ENVS}/ml.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    script:
        "../../scripts/describe_dataset.py"
