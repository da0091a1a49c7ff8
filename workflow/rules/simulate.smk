# Ground truth and simulated raw data: template, cohort, anatomy, MRI k-space, CT and PET sinograms.


rule build_template:
    output:
        t1w=template("T1w.nii.gz"),
        fractions=template("seg-tissue_probseg.nii.gz"),
        tissue=template("seg-tissue_dseg.nii.gz"),
        regions=template("seg-regions_dseg.nii.gz"),
        brain=template("desc-brain_mask.nii.gz"),
    log:
        logfile("build_template", subject=False),
    benchmark:
        benchfile("build_template", subject=False)
    conda:
        f"{ENVS}/template.yaml"
    threads: 1
    resources:
        mem_mb=grid_mem(3000),
        runtime=10,
    params:
        voxel_mm=config["anatomy"]["voxel_mm"],
        mri=config["acquisition"]["mri"],
    script:
        "../../scripts/build_template.py"


rule simulate_anatomy:
    input:
        fractions=rules.build_template.output.fractions,
        tissue=rules.build_template.output.tissue,
        regions=rules.build_template.output.regions,
        brain=rules.build_template.output.brain,
    output:
        t1map=sub("anat", "desc-truth_T1map.nii.gz"),
        t2map=sub("anat", "desc-truth_T2map.nii.gz"),
        pdmap=sub("anat", "desc-truth_PDmap.nii.gz"),
        tissue=sub("anat", "seg-tissue_desc-truth_dseg.nii.gz"),
        regions=sub("anat", "seg-regions_desc-truth_dseg.nii.gz"),
        ct=sub("ct", "desc-truth_ct.nii.gz"),
        fdg=sub("pet", "desc-truth_pet.nii.gz"),
        motion=sub("pet", "from-T1w_to-pet_desc-truth_xfm.json"),
        sidecar=sub("anat", "desc-truth_anatomy.json"),
    log:
        logfile("simulate_anatomy"),
    benchmark:
        benchfile("simulate_anatomy")
    group:
        "subject"
    conda:
        f"{ENVS}/torch.yaml"
    threads: 1
    resources:
        mem_mb=grid_mem(2000),
        runtime=5,
    params:
        cohort=SUBJECT_DRAWS,
        effects=subject_effects,
        pet=config["acquisition"]["pet"],
        voxel_mm=config["anatomy"]["voxel_mm"],
    script:
        "../../scripts/simulate_anatomy.py"


rule simulate_mri:
    input:
        t1map=rules.simulate_anatomy.output.t1map,
        t2map=rules.simulate_anatomy.output.t2map,
        pdmap=rules.simulate_anatomy.output.pdmap,
    output:
        kspace=raw_data(sub("anat", "kspace.npz")),
        truth=sub("anat", "desc-truth_T1w.nii.gz"),
    log:
        logfile("simulate_mri"),
    benchmark:
        benchfile("simulate_mri")
    group:
        "subject"
    conda:
        f"{ENVS}/torch.yaml"
    threads: 1
    resources:
        mem_mb=grid_mem(2000),
        runtime=5,
    params:
        seed=config["cohort"]["seed"],
        mri=config["acquisition"]["mri"],
    script:
        "../../scripts/simulate_mri.py"


rule simulate_ct:
    input:
        ct=rules.simulate_anatomy.output.ct,
    output:
        sinogram=raw_data(sub("ct", "sinogram.npz")),
    log:
        logfile("simulate_ct"),
    benchmark:
        benchfile("simulate_ct")
    group:
        "subject"
    conda:
        f"{ENVS}/torch.yaml"
    threads: 1
    resources:
        mem_mb=grid_mem(2000),
        runtime=5,
    params:
        seed=config["cohort"]["seed"],
        ct=config["acquisition"]["ct"],
    script:
        "../../scripts/simulate_ct.py"


rule simulate_pet:
    input:
        fdg=rules.simulate_anatomy.output.fdg,
        ct=rules.simulate_anatomy.output.ct,
    output:
        sinogram=raw_data(sub("pet", "sinogram.npz")),
        truth=sub("pet", "res-pet_desc-truth_pet.nii.gz"),
    log:
        logfile("simulate_pet"),
    benchmark:
        benchfile("simulate_pet")
    group:
        "subject"
    conda:
        f"{ENVS}/torch.yaml"
    threads: 1
    resources:
        mem_mb=grid_mem(2000),
        runtime=5,
    params:
        seed=config["cohort"]["seed"],
        pet=config["acquisition"]["pet"],
    script:
        "../../scripts/simulate_pet.py"
