# Reconstruction: MRI coil combination, CT filtered back-projection, PET OSEM with CT attenuation correction.


rule reconstruct_mri:
    input:
        kspace=rules.simulate_mri.output.kspace,
    output:
        t1w=sub("anat", "desc-recon_T1w.nii.gz"),
    log:
        logfile("reconstruct_mri"),
    benchmark:
        benchfile("reconstruct_mri")
    group:
        "subject"
    conda:
        f"{ENVS}/torch.yaml"
    threads: 1
    resources:
        mem_mb=grid_mem(2000),
        runtime=5,
    script:
        "../../scripts/reconstruct_mri.py"


rule reconstruct_ct:
    input:
        sinogram=rules.simulate_ct.output.sinogram,
    output:
        ct=sub("ct", "desc-fbp_ct.nii.gz"),
    log:
        logfile("reconstruct_ct"),
    benchmark:
        benchfile("reconstruct_ct")
    group:
        "subject"
    conda:
        f"{ENVS}/torch.yaml"
    threads: 1
    resources:
        mem_mb=grid_mem(2000),
        runtime=5,
    params:
        ct=config["reconstruction"]["ct"],
    script:
        "../../scripts/reconstruct_ct.py"


rule reconstruct_pet:
    input:
        sinogram=rules.simulate_pet.output.sinogram,
        ct=rules.reconstruct_ct.output.ct,
    output:
        pet=sub("pet", "desc-osem_pet.nii.gz"),
    log:
        logfile("reconstruct_pet"),
    benchmark:
        benchfile("reconstruct_pet")
    group:
        "subject"
    conda:
        f"{ENVS}/torch.yaml"
    threads: 1
    resources:
        mem_mb=grid_mem(2000),
        runtime=5,
    params:
        pet=config["reconstruction"]["pet"],
    script:
        "../../scripts/reconstruct_pet.py"
