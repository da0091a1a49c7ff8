# Features from reconstructed images only (no rule here reads a ground-truth file): regional volumes and
# PET SUVR per subject, gathered into one group table.


rule extract_features:
    input:
        csf=rules.segment_t1.output.csf,
        gm=rules.segment_t1.output.gm,
        wm=rules.segment_t1.output.wm,
        regions=rules.segment_t1.output.regions,
        pet_in_t1=rules.register_pet.output.pet_in_t1,
    output:
        tsv=sub("", "features.tsv"),
    params:
        library=library("extract_features"),
    log:
        logfile("extract_features"),
    benchmark:
        benchfile("extract_features")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=5,
    conda:
        f"{ENVS}/torch.yaml"
    script:
        "../../scripts/extract_features.py"


rule gather_features:
    input:
        tsv=per_subject(rules.extract_features.output.tsv),
    output:
        tsv=group("features.tsv"),
    params:
        library=library("gather_tables"),
    log:
        logfile("gather_features", subject=False),
    benchmark:
        benchfile("gather_features", subject=False)
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        f"{ENVS}/ml.yaml"
    script:
        "../../scripts/gather_tables.py"
