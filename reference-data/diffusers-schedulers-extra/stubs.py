import sys, types, importlib.abc, importlib.machinery
STUB = ('torch.distributed._functional_collectives', 'torch.distributed.tensor', 'torch.distributed.fsdp', 'torch.nn.attention', 'huggingface_hub', 'safetensors', 'accelerate', 'peft', 'transformers', 'torchvision', 'PIL', 'kernels', 'torchao')
class Dummy:
    def __init__(self, *a, **k): pass
    def __call__(self, *a, **k): return Dummy()
    def __getattr__(self, n): return Dummy()
    def __str__(self): return '/tmp/hf'
    def __fspath__(self): return '/tmp/hf'
    def __iter__(self): return iter(())
    def __bool__(self): return False
    def __mro_entries__(self, bases): return (object,)
class StubModule(types.ModuleType):
    def __getattr__(self, n):
        if n.startswith('__'): raise AttributeError(n)
        if n[0].isupper() and not n.isupper(): 
            return type(n, (Exception,) if 'Error' in n else (object,), {'__init__': lambda s,*a,**k: None})
        if n.isupper(): return '/tmp/hf'
        return Dummy()
class Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path, target=None):
        if name.split('.')[0] in STUB or any(name == s or name.startswith(s + '.') for s in STUB):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
    def create_module(self, spec):
        m = StubModule(spec.name); m.__path__ = []; m.__version__ = '0.0.0'; return m
    def exec_module(self, m): pass
sys.meta_path.insert(0, Finder())
import importlib.metadata as md
_orig = md.version
def version(n):
    try: return _orig(n)
    except Exception: return '0.0.0'
md.version = version
sys.path.insert(0, '/tmp/dsrc/src')
import torch
for _a in ('xpu', 'mps', 'mtia', 'npu', 'musa'):
    if not hasattr(torch, _a):
        setattr(torch, _a, StubModule('torch.' + _a))
for _a in ('float8_e4m3fn', 'float8_e5m2', 'uint16', 'uint32', 'uint64', 'float8_e4m3fnuz', 'float8_e5m2fnuz'):
    if not hasattr(torch, _a):
        setattr(torch, _a, torch.float32)
import torch.distributed as _td
if not hasattr(_td, 'device_mesh'):
    _td.device_mesh = StubModule('torch.distributed.device_mesh')
    sys.modules['torch.distributed.device_mesh'] = _td.device_mesh
if not hasattr(torch, 'compiler'):
    class _Compiler(types.ModuleType):
        def disable(self, fn=None, *a, **k):
            return fn if fn is not None else (lambda f: f)
        def is_compiling(self): return False
        def __getattr__(self, n):
            if n.startswith('__'): raise AttributeError(n)
            return lambda *a, **k: (a[0] if a and callable(a[0]) else (lambda f: f))
    torch.compiler = _Compiler('torch.compiler')
    sys.modules['torch.compiler'] = torch.compiler
