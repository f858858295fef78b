# Where the real datasets live: point these at your local copies (nothing is
# downloaded). Layouts and where to get each: docs/datasets.md.
refcoco_root = "data/refcoco"  # instances.json, refs(unc).json
refcoco_plus_root = "data/refcoco+"  # instances.json, refs(unc).json
refcocog_root = "data/refcocog"  # instances.json, refs(umd).json
grefcoco_root = "data/grefcoco"  # instances.json, grefs(unc).json
# COCO train2014 (the RefCOCO family's images), relative to those roots or absolute
coco_train2014 = "../coco/train2014"
coco2017_root = "data/coco"  # annotations/instances_train2017.json, train2017/
llava_pretrain_root = "data/llava_pretrain"  # blip_laion_cc_sbu_558k.json, images/
llava_instruct_root = "data/llava_instruct"  # llava_v1_5_mix665k.json, images
visual_genome_root = "data/visual_genome"  # region_descriptions.json, image_data.json, VG_100K*/
flickr30k_root = "data/flickr30k_entities"  # Annotations/, Sentences/, flickr30k-images/
