# Group models: each (task, model, feature set) is its own job, scored by nested cross-validation on the
# task's splits, drawn once per study; summarise_models lays the rows out as the course's table.


rule make_splits:
    input:
        participants=rules.make_participants.output.tsv,
    output:
        splits=group("models/{task}/splits.tsv"),
    log:
        logfile("make_splits/{task}", subject=False),
    benchmark:
        benchfile("make_splits/{task}", subject=False)
    conda:
        f"{ENVS}/ml.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        # the schema's content, not its path: moving the checkout reruns nothing, editing the schema does
        participants_schema=PARTICIPANTS_SCHEMA,
        subjects=[f"sub-{s}" for s in GROUP_SUBJECTS],
        folds=MODEL["cv_folds"],
        repeats=MODEL["cv_repeats"],
        seed=config["cohort"]["seed"],
    script:
        "../../scripts/make_splits.py"


rule cross_validate:
    input:
        features=lambda w: design_source(w.features),
        participants=rules.make_participants.output.tsv,
        splits=rules.make_splits.output.splits,
    output:
        metrics=group("models/{task}/{model}/{features}/metrics.tsv"),
        predictions=group("models/{task}/{model}/{features}/predictions.tsv"),
    log:
        logfile("cross_validate/{task}/{model}/{features}", subject=False),
    benchmark:
        benchfile("cross_validate/{task}/{model}/{features}", subject=False)
    wildcard_constraints:
        model=one_of(c for c in MODEL["classifiers"] if c not in IMAGE_CLASSIFIERS),
    conda:
        f"{ENVS}/ml.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        participants_schema=PARTICIPANTS_SCHEMA,
        # only this job's own settings, so that adding a model or a feature set runs only its jobs
        validation=lambda w: model_job_settings(w.task, w.model, w.features),
        seed=config["cohort"]["seed"],
    script:
        "../../scripts/cross_validate.py"


# The image classifiers (dlmi.analysis.cnn) apart, for their env (torch) and their GPU under the GPU profile.
rule cross_validate_cnn:
    input:
        features=lambda w: design_source(w.features),
        participants=rules.make_participants.output.tsv,
        splits=rules.make_splits.output.splits,
    output:
        metrics=group("models/{task}/{model}/{features}/metrics.tsv"),
        predictions=group("models/{task}/{model}/{features}/predictions.tsv"),
    log:
        logfile("cross_validate_cnn/{task}/{model}/{features}", subject=False),
    benchmark:
        benchfile("cross_validate_cnn/{task}/{model}/{features}", subject=False)
    wildcard_constraints:
        model=one_of(c for c in MODEL["classifiers"] if c in IMAGE_CLASSIFIERS),
    conda:
        f"{ENVS}/cnn.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        participants_schema=PARTICIPANTS_SCHEMA,
        validation=lambda w: model_job_settings(w.task, w.model, w.features),
        seed=config["cohort"]["seed"],
    script:
        "../../scripts/cross_validate_cnn.py"


rule summarise_models:
    input:
        metrics=model_job_outputs("metrics"),
        predictions=model_job_outputs("predictions"),
    output:
        metrics=report(
            group("metrics.tsv"),
            caption="../report/metrics.rst",
            category="Model",
            labels={"table": "classification metrics"},
        ),
        predictions=group("predictions.tsv"),
        roc=report(
            group("roc.png"),
            caption="../report/roc.rst",
            category="Model",
            labels={"figure": "ROC curves"},
        ),
        confusion=report(
            group("confusion.png"),
            caption="../report/confusion.rst",
            category="Model",
            labels={"figure": "confusion matrices"},
        ),
    log:
        logfile("summarise_models", subject=False),
    benchmark:
        benchfile("summarise_models", subject=False)
    conda:
        f"{ENVS}/ml.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../../scripts/summarise_models.py"
