/**
 * `mood launch`: run a mood subcommand or a node script as N processes per node with torchrun's
 * environment (RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT).
 *
 *   mood launch --nproc_per_node N [--nnodes M --node_rank R --master_addr A --master_port P] -- <cmd...>
 *
 * Only type imports at the top (lazy import in the action keeps `mood --help` fast).
 */
import type { Command } from 'commander';
import { intFlag } from '../util/flags';

export interface LaunchCliOptions {
  nprocPerNode?: string;
  nnodes?: string;
  nodeRank?: string;
  masterAddr?: string;
  masterPort?: string;
}

export async function runLaunchCommand(command: string[], opts: LaunchCliOptions): Promise<number> {
  const { launch } = await import('../distributed/launch');
  const nproc = intFlag('--nproc_per_node', opts.nprocPerNode, { min: 0 });
  if (nproc === undefined) throw new Error('mood launch: --nproc_per_node is required (processes on this node, e.g. one per GPU)');
  const r = await launch({
    nprocPerNode: nproc,
    nnodes: intFlag('--nnodes', opts.nnodes, { min: 0 }),
    nodeRank: intFlag('--node_rank', opts.nodeRank, { min: 0 }),
    masterAddr: opts.masterAddr,
    masterPort: intFlag('--master_port', opts.masterPort, { min: 0 }),
    command,
  });
  return r.exitCode;
}

export function registerLaunch(program: Command): void {
  program
    .command('launch')
    .description('run a mood subcommand or node script as one process per device (torchrun environment; fail-fast)')
    .option('--nproc-per-node <n>', 'processes on this node (one per GPU; on CPU, cores are split between them)')
    .option('--nnodes <n>', 'number of nodes (default 1)')
    .option('--node-rank <r>', "this node's index in 0..nnodes-1 (default 0)")
    .option('--master-addr <addr>', 'address of node 0, where rank 0 hosts the rendezvous (default 127.0.0.1)')
    .option('--master-port <port>', 'free TCP port on the master (default 29500)')
    .argument('<command...>', 'after --: a mood subcommand with its flags, or a .js/.ts script with its arguments')
    .action(async (command: string[], opts: LaunchCliOptions) => {
      process.exitCode = await runLaunchCommand(command, opts);
    });
}
