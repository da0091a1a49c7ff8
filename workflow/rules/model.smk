# Group models: AD vs CN classification with subject-level stratified cross-validation.


rule train_models:
    input:
        features=rules.gather_features.output.tsv,
        participants=rules.make_participants.output.tsv,
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
    log:
        logfile("train_models", subject=False),
    benchmark:
        benchfile("train_models", subject=False)
    conda:
        f"{ENVS}/ml.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        # the schema's content, not its path: moving the checkout reruns nothing, editing the schema does
        participants_schema=dlmi_workflow.dataset.participants_schema(
            dlmi_workflow.config.load_yaml(workflow.source_path("../schemas/participants.schema.yaml")),
            simulated=SIMULATED,
        ),
        model=MODEL,
        seed=config["cohort"]["seed"],
    script:
        "../../scripts/train_models.py"
