"""TAO-RL as a verl 0.9 plugin (docs/verl.md). Importing this package does not import verl.

    plugin       the `verl.plugins` entry point: registers every piece below with verl, loudly
    registry     the names the plugin registers; require() checks them (TaoSyncTrainer at start)
    settings     the `tao:` block of verl's config -> a validated taorl Config (preset, algo, tool, ...)
    loss_settings  verl's actor loss settings squared with tao.algo.loss (explicit conflict: error)
    fields       TransferQueue / micro-batch fields -> plain python rows
    advantage    `tao_grpo`, verl's estimator signature over taorl.algo (GRPO / Dr.GRPO)
    turns        the spec §1 turn format, tokens in / tokens out (cut after the first code block,
                 "\\nCode execution result: ...\\n" observation tokens with mask 0)
    dump         RunDump: one verl step -> one step of a taorl run directory (taorl.store schema)
    loss         tao_ppo_loss, the loss-time shaping of tao.entropy_source=train_forward (design L)
    verl_tool    PythonSandboxTool (verl BaseTool) and the `python_codeblock` tool parser
    agent_loop   TaoTIRAgentLoop, registered as `tao_tir_agent`
    trainer      TaoSyncTrainer (`trainer.v1.trainer_mode=tao_sync`): advantage + dump per step

The verl-free steps shared with the TRL integration live in taorl.integrations.common: layout
(response_mask -> segment / turn / post-tool facts; uid -> groups), advantage (the TAO-RL advantage
on a batch of rows, computed by taorl.algo: criterion 1 / void / overlong weights, criterion 2, GRPO /
Dr.GRPO, entropy-guided shaping) and step_tables (StepRows -> the run-directory tables).
Everything here except plugin, verl_tool, agent_loop, loss and trainer is plain torch and runs
without verl.
"""
