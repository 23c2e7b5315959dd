"""TAO-RL as a verl 0.9 plugin (docs/verl.md). Importing this package does not import verl.

    plugin       the `verl.plugins` entry point: registers every piece below with verl, loudly
    registry     the names the plugin registers; require() checks them (TaoSyncTrainer at start)
    settings     the `tao:` block of verl's config -> a validated taorl Config (preset, algo, tool, ...)
    loss_settings  verl's actor loss settings squared with tao.algo.loss (explicit conflict: error)
    layout       verl's response_mask -> taorl's segment / turn / post-tool facts; uid -> groups
    advantage    the TAO-RL advantage on a verl batch, computed by taorl.algo (criterion 1 / void /
                 overlong weights, criterion 2, GRPO / Dr.GRPO, entropy-guided shaping)
    turns        the spec §1 turn format, tokens in / tokens out (cut after the first code block,
                 "\\nCode execution result: ...\\n" observation tokens with mask 0)
    dump         one verl step -> one step of a taorl run directory (taorl.store schema)
    verl_tool    PythonSandboxTool (verl BaseTool) and the `python_codeblock` tool parser
    agent_loop   TaoTIRAgentLoop, registered as `tao_tir_agent`
    trainer      TaoSyncTrainer (`trainer.v1.trainer_mode=tao_sync`): advantage + dump per step

Everything except plugin, verl_tool, agent_loop and trainer is plain torch and runs without verl.
"""
