"""A robot's URDF read for MuJoCo: mesh paths made absolute, mimic joints, undrawn links.

MuJoCo's URDF import keeps a mesh path's file name only, ignores ``<mimic>`` and drops visual
geometry; what a self-filter needs of those is read here from the URDF itself. No MuJoCo here.
"""
from dataclasses import dataclass
import os
from typing import Mapping, Sequence
from urllib.parse import unquote, urlparse
import xml.etree.ElementTree as ElementTree


@dataclass(frozen=True)
class Mimic:
    """A URDF ``<mimic>`` joint: its position is ``multiplier * source + offset``."""

    source: str
    multiplier: float = 1.0
    offset: float = 0.0


@dataclass(frozen=True)
class UrdfForMujoco:
    """What MuJoCo is given of a URDF, and what the URDF says that MuJoCo ignores."""

    text: str
    '''The URDF with every mesh path absolute and ``<compiler strippath="false"/>``.'''
    mimics: dict[str, Mimic]
    '''Joint name -> what it mimics, as the URDF says (a chain not yet resolved).'''
    visual_only_links: tuple[str, ...]
    '''Links with visual geometry and no collision geometry: MuJoCo keeps a URDF's collision
    geometry only, so they are never drawn (empty when the URDF's own ``<mujoco><compiler
    discardvisual="false"/>`` keeps its visual geometry too).'''


def read_urdf(model_path: str, mesh_dir: str = '') -> UrdfForMujoco:
    """Read a URDF for MuJoCo: mesh paths made absolute, mimic joints and undrawn links found.

    MuJoCo's URDF import keeps only a mesh path's file name by default (looked up in one
    folder) and names each mesh after its file name: two different ``link.stl`` (an arm's and
    a gripper's package) would be one. Each mesh path is made absolute here and MuJoCo told to
    keep it (``strippath="false"``):

    - ``package://PKG/PATH``: ``mesh_dir/PKG/PATH``, ``mesh_dir/PATH`` or ``mesh_dir/NAME``
      (NAME: the file name; a folder holding the packages, one package or all meshes), then
      ``PKG/PATH`` under the nearest folder named PKG above the URDF (a source or install
      tree), then NAME beside the URDF: the first that exists.
    - ``file://PATH`` and absolute paths: as they are.
    - a relative path: under ``mesh_dir``, else beside the URDF; then its file name there.

    Raises:
        ValueError: not a URDF (XML whose root is ``<robot>``), a mesh file that is not found
            (with the paths tried), two different mesh files MuJoCo would merge (the same name
            and scale), or a mimic joint without the joint it mimics.
    """
    try:
        root = ElementTree.parse(model_path).getroot()
    except (ElementTree.ParseError, OSError) as exc:
        raise ValueError(f'cannot load the robot model {model_path!r}: {exc}') from exc
    if root.tag != 'robot':
        raise ValueError(f'{model_path!r} is not a URDF (its root is <{root.tag}>, not <robot>)')
    compiler = root.find('mujoco/compiler')
    if compiler is None:
        extension = root.find('mujoco')
        if extension is None:
            extension = ElementTree.Element('mujoco')
            root.insert(0, extension)
        compiler = ElementTree.SubElement(extension, 'compiler')
    compiler.set('strippath', 'false')
    keeps_visual = compiler.get('discardvisual', 'true').strip().lower() == 'false'
    model_dir = os.path.dirname(os.path.abspath(model_path))
    # MuJoCo's name for each mesh: its file name without the extension, and the scale.
    named: dict[tuple[str, tuple[float, ...]], str] = {}
    # Each file found for a package:// path: two packages' meshes found as one file (by its
    # name in a flat mesh_dir) would draw one link with the other's mesh.
    found_for: dict[str, str] = {}
    for kind in ('collision', 'visual'):
        for mesh in root.iterfind(f'link/{kind}/geometry/mesh'):
            filename = mesh.get('filename', '')
            if kind == 'visual' and not keeps_visual:
                found = _find_mesh(filename, model_dir, mesh_dir)
                if found:   # else dropped by MuJoCo anyway
                    mesh.set('filename', found)
                continue
            path = _mesh_path(filename, model_dir, mesh_dir, model_path)
            mesh.set('filename', path)
            if filename.startswith('package://'):
                first = found_for.setdefault(os.path.realpath(path), filename)
                if first != filename:
                    raise ValueError(
                        f'{model_path!r}: mesh paths {first!r} and {filename!r} are both found '
                        f'as {path}: give as mesh_dir the folder that holds '
                        'the packages (mesh_dir/PKG/PATH), or leave it empty to find them above '
                        'the URDF')
            try:
                scale = tuple(float(v) for v in mesh.get('scale', '1 1 1').split())
            except ValueError as exc:
                raise ValueError(f'{model_path!r}: mesh {filename!r} has a scale that is not '
                                 f'three numbers: {mesh.get("scale")!r}') from exc
            key = (os.path.splitext(os.path.basename(path))[0], scale)
            other = named.setdefault(key, path)
            if os.path.realpath(other) != os.path.realpath(path):
                raise ValueError(
                    f'{model_path!r} uses two different mesh files of the same name, {other} '
                    f'and {path}: MuJoCo names a mesh after its file name and would draw both '
                    'links with the first. Rename one of the files (and its URDF path)')
    mimics = {}
    for joint in root.iterfind('joint'):
        mimic = joint.find('mimic')
        if mimic is None:
            continue
        name = joint.get('name', '')
        try:
            mimics[name] = Mimic(mimic.attrib['joint'], float(mimic.get('multiplier', 1.0)),
                                 float(mimic.get('offset', 0.0)))
        except (KeyError, ValueError) as exc:
            raise ValueError(f'{model_path!r}: joint {name!r} has a <mimic> without a joint '
                             'to mimic or with a multiplier or offset that is not a number'
                             ) from exc
    if keeps_visual:
        visual_only = ()
    else:
        visual_only = tuple(link.get('name', '') for link in root.iterfind('link')
                            if link.find('visual') is not None
                            and link.find('collision') is None)
    return UrdfForMujoco(ElementTree.tostring(root, encoding='unicode'), mimics, visual_only)


def is_urdf(model_path: str) -> bool:
    """A URDF by its extension, or (any other) by its root element."""
    if model_path.lower().endswith('.urdf'):
        return True
    try:
        for _, element in ElementTree.iterparse(model_path, events=('start',)):
            return element.tag == 'robot'
    except ElementTree.ParseError:
        return False   # MuJoCo says what is wrong with it
    return False


def _mesh_candidates(filename: str, model_dir: str, mesh_dir: str) -> list[str]:
    """Where a URDF's mesh path may be, most specific first."""
    if filename.startswith('package://'):
        package, _, inside = filename[len('package://'):].partition('/')
        name = os.path.basename(inside)
        found = []
        if mesh_dir:
            found += [os.path.join(mesh_dir, package, inside), os.path.join(mesh_dir, inside),
                      os.path.join(mesh_dir, name)]
        folder = model_dir
        while True:   # the package's own folder above the URDF (PKG/urdf/robot.urdf)
            if os.path.basename(folder) == package:
                found.append(os.path.join(folder, inside))
                break
            parent = os.path.dirname(folder)
            if parent == folder:
                break
            folder = parent
        return found + [os.path.join(model_dir, name)]
    if filename.startswith('file://'):
        return [unquote(urlparse(filename).path)]
    if os.path.isabs(filename):
        return [filename]
    base = mesh_dir or model_dir
    return [os.path.join(base, filename), os.path.join(base, os.path.basename(filename))]


def _find_mesh(filename: str, model_dir: str, mesh_dir: str) -> str | None:
    for path in _mesh_candidates(filename, model_dir, mesh_dir):
        if os.path.isfile(path):
            return os.path.abspath(path)
    return None


def _mesh_path(filename: str, model_dir: str, mesh_dir: str, model_path: str) -> str:
    if not filename:
        raise ValueError(f'{model_path!r} has a <mesh> without a filename')
    found = _find_mesh(filename, model_dir, mesh_dir)
    if found is None:
        tried = ', '.join(_mesh_candidates(filename, model_dir, mesh_dir))
        raise ValueError(f'{model_path!r}: no mesh file {filename!r} (tried {tried}); give the '
                         "folder of the model's meshes as mesh_dir")
    return found


def resolve_mimics(mimics: Mapping[str, Mimic], moving: Sequence[str], model_path: str
                   ) -> dict[str, Mimic]:
    """Each moving mimic joint as a function of a joint that is not one (chains followed)."""
    resolved = {}
    for name in mimics:
        if name not in moving:
            continue   # a fixed joint's mimic moves nothing
        multiplier, offset, source, seen = 1.0, 0.0, name, [name]
        while source in mimics:
            mimic = mimics[source]
            # q(source) = m * q(mimic.source) + o, into q(name) = multiplier * q(source) + offset
            offset += multiplier * mimic.offset
            multiplier *= mimic.multiplier
            source = mimic.source
            if source in seen:
                raise ValueError(f'{model_path!r}: mimic joints {seen} mimic each other in a '
                                 'loop')
            seen.append(source)
        if source not in moving:
            raise ValueError(f'{model_path!r}: joint {name!r} mimics {source!r}, which is not '
                             'a moving joint of the model')
        resolved[name] = Mimic(source, multiplier, offset)
    return resolved
