# The dataloaders of a real-data config; the config adds each one's dataset
# (and its batch where it differs). Multi-GPU: batch_size is per GPU.
loader = dict(num_workers=4, collate_fn=dict(type="grounding_collate"))
train_dataloader = dict(
    **loader,
    batch_size=16,
    persistent_workers=True,
    sampler=dict(type="DefaultSampler", shuffle=True),
)
val_dataloader = dict(**loader, batch_size=16, sampler=dict(type="DefaultSampler", shuffle=False))
test_dataloader = val_dataloader
val_cfg = dict(type="ValLoop")
test_cfg = dict(type="TestLoop")
