# Rules for the demo part of the pipeline.
#
# demo_inputs: the synthetic demo AOI's HR images and annotation polygons (pipeline/demo/city.py).
# One rule per AOI marked `generated: true`; outputs are the paths its definition names. The
# rule for the AOI named "demo" is called `demo_inputs`, others `demo_inputs_<name>`.

for _name, _spec in AOIS.items():
    if not _spec.generated:
        continue

    rule:
        name:
            "demo_inputs" if _name == "demo" else f"demo_inputs_{_name}"
        output:
            hr_t1=_spec.images.t1,
            hr_t2=_spec.images.t2,
            labels_t1=_spec.annotations.t1,
            labels_t2=_spec.annotations.t2,
        params:
            cfg=CFG.section("demo"),
            aoi=_spec.model_dump(mode="json"),
            aoi_file=AOI_FILES[_name],
        log:
            f"{CFG.results_dir}/logs/demo_inputs/{_name}.log",
        benchmark:
            str(L.job_benchmark("demo_inputs", _name)),
        threads: 2
        resources:
            mem_mb=2000,
        conda:
            "../envs/pipeline.yaml"
        script:
            "../../stages/demo_inputs.py"
