"""The ``sole-r1`` command: one sub-command per module in ``sole_r1_ros.commands``."""
import argparse
import importlib
import sys

# name -> (module, one-line help). Modules are imported only when their sub-command runs, so
# ``sole-r1 --help`` stays fast and a missing optional dependency only breaks its own command.
_COMMANDS: dict[str, tuple[str, str]] = {
    'demo': ('sole_r1_ros.commands.demo', 'a simulated robot learns a task from video rewards'),
    'score': ('sole_r1_ros.commands.score', 'SOLE-R1 progress curve and reasoning for a video'),
    'score-bag': ('sole_r1_ros.commands.score_bag', 'score every episode of a recorded bag'),
    'camera-delay': ('sole_r1_ros.commands.camera_delay',
                     "a camera's latency against the joint states, for the self-filter"),
    'record': ('sole_r1_ros.commands.record', 'record cameras, rewards and reasoning to a bag'),
    'learn': ('sole_r1_ros.commands.learn', 'learn a task online from progress rewards'),
    'synth': ('sole_r1_ros.commands.synth', 'synthetic robot videos with ground-truth progress'),
    'train': ('sole_r1_ros.commands.train', 'train a model offline (train compact: progress CNN)'),
    'eval': ('sole_r1_ros.commands.eval', 'evaluate a reward model (eval reward: VOC, AUROC)'),
    'finetune': ('sole_r1_ros.commands.finetune', 'fine-tune SOLE-R1 (prepare, sft, grpo)'),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='sole-r1', description='Learn robot tasks online with SOLE-R1 progress rewards.')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND')
    sub.required = True
    for name, (module_name, help_text) in _COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0] in ('-h', '--help') or argv[0] not in _COMMANDS:
        parser.parse_args(argv)  # prints help or the unknown-command error and exits
        return 2
    module_name, help_text = _COMMANDS[argv[0]]
    module = importlib.import_module(module_name)
    sub = argparse.ArgumentParser(prog=f'sole-r1 {argv[0]}', description=help_text)
    module.add_arguments(sub)
    args = sub.parse_args(argv[1:])
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        print('interrupted', file=sys.stderr)
        return 130
    except (FileNotFoundError, FileExistsError, ValueError) as exc:
        print(f'sole-r1 {argv[0]}: error: {exc}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
