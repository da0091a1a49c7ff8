# The study's dataset: the output folder as a BIDS derivative dataset (dataset_description.json at its top),
# its participants, and, in a study of a researcher's own BIDS data (input.bids_dir), each subject's T1w
# conformed to the study's grid. The code version is read inside the job (not a param), so a new commit
# alone re-runs nothing; each output's .prov.json record holds the version that made it.


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
    params:
        # the datasets the images' Sources name: a BIDS study's input as "raw" (none for a simulated study)
        **({} if SIMULATED else {"links": {"raw": DATASET.root}}),
    script:
        "../../scripts/describe_dataset.py"


rule make_participants:
    output:
        tsv=study("participants.tsv"),
        sidecar=study("participants.json"),
    log:
        logfile("make_participants", subject=False),
    benchmark:
        benchfile("make_participants", subject=False)
    conda:
        f"{ENVS}/ml.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        # a simulated cohort's truth, or a BIDS dataset's groups (subject -> CN/AD from input.diagnosis)
        **(
            {"cohort": config["cohort"], "effects": config["anatomy"]["effects"]}
            if SIMULATED
            else {"groups": DATASET.groups}
        ),
        subjects=SUBJECTS,
    script:
        "../../scripts/make_participants.py"


rule conform_t1w:
    input:
        source=source_t1w,
    output:
        t1w=sub("anat", "desc-preproc_T1w.nii.gz"),
        sidecar=sub("anat", "desc-preproc_T1w.json"),
    log:
        logfile("conform_t1w"),
    benchmark:
        benchfile("conform_t1w")
    group:
        "subject"
    conda:
        f"{ENVS}/torch.yaml"
    threads: 1
    resources:
        mem_mb=grid_mem(3000),
        runtime=10,
    params:
        voxel_mm=config["anatomy"]["voxel_mm"],
        n4=config["input"]["n4"],
        skull_stripped=config["input"]["skull_stripped"],
        dataset=lambda wildcards: DATASET.root,
    script:
        "../../scripts/conform_t1w.py"
