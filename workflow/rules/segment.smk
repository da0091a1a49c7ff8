# Segmentation: the subject's own tissue classes fused with atlas regions propagated through the inverse
# of the T1-to-template transform (affine and velocity field).


rule segment_t1:
    input:
        t1w=analysis_t1w(),
        xfm=rules.register_t1.output.xfm,
        velocity=rules.register_t1.output.velocity,
        regions=rules.build_template.output.regions,
        brain=rules.build_template.output.brain,
        tissue_prior=rules.build_template.output.tissue,
    output:
        csf=sub("anat", "label-CSF_probseg.nii.gz"),
        gm=sub("anat", "label-GM_probseg.nii.gz"),
        wm=sub("anat", "label-WM_probseg.nii.gz"),
        tissue=sub("anat", "seg-tissue_dseg.nii.gz"),
        regions=sub("anat", "seg-regions_dseg.nii.gz"),
    log:
        logfile("segment_t1"),
    benchmark:
        benchfile("segment_t1")
    group:
        "subject"
    conda:
        f"{ENVS}/torch.yaml"
    threads: 1
    resources:
        mem_mb=grid_mem(3000),
        runtime=10,
    script:
        "../../scripts/segment_t1.py"
