"""The one exception root of the devnet package.

Every error the package raises on purpose derives from `DevnetError`; anything else is a bug and keeps its
traceback. The CLI answers each with its `exit_code`: 1 when a tool or the node failed, 2 when the input
(a scenario option, a price file, a manifest path) is wrong and the user can fix it::

    DevnetError                      root (exit 1)
     ├─ NodeToolsError               devnet/npm.py: node or npm missing, install failed
     ├─ SolcError                    devnet/solc.py: the compiler reported errors
     ├─ AnvilError                   devnet/anvil.py: anvil could not start or stopped
     ├─ RpcError                     devnet/anvil.py: a JSON-RPC error answer
     ├─ DeployError                  devnet/deploy.py: a transaction reverted or got no receipt
     ├─ AaveDeployError              devnet/aave.py: a market deployment or transaction failed
     ├─ GovernanceError              devnet/governance.py: a governance step cannot be taken
     ├─ UniswapError                 devnet/uniswap.py: a bad pool or swap request
     ├─ ScenarioError                devnet/scenario.py: bad scenario input (exit 2)
     ├─ ManifestError                devnet/serve.py: a missing or foreign manifest (exit 2)
     └─ DevnetDownError              devnet/stack.py: the devnet a manifest names does not answer (exit 2)
"""

from __future__ import annotations


class DevnetError(Exception):
    """Root of every error the devnet package raises on purpose."""

    exit_code = 1
