# The output folder as a BIDS derivative dataset: dataset_description.json at its top. The code version is
# read inside the job (not a param), so a new commit alone re-runs nothing; each output's .prov.json record
# holds the version that made it.


rule describe_dataset:
    output:
        description=study("dataset_description.json"),
    params:
        library=library("describe_dataset"),
    log:
        logfile("describe_dataset", subject=False),
    benchmark:
        benchfile("describe_dataset", subject=False)
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    conda:
        f"{ENVS}/ml.yaml"
    script:
        "../../scripts/describe_dataset.py"
