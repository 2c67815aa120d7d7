/**
 * Highlights the body of a `%%mixcv` cell as YAML.
 *
 * A `%%mixcv` cell is YAML under a magic line, but the notebook gives every cell of an
 * IPython kernel the Python language. This plugin adds one CodeMirror extension to each
 * inline editor (notebook cells, console prompts): while the cell's first non-blank line
 * is `%%mixcv`, JupyterLab's own YAML language (the one a `.yaml` file gets) takes
 * precedence over Python; when the line goes, Python comes back. The file editor is left
 * alone. Nothing here talks to the kernel: without this extension the magic works the same.
 */

import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  EditorExtensionRegistry,
  IEditorExtensionRegistry,
  IEditorLanguageRegistry
} from '@jupyterlab/codemirror';
import {
  Compartment,
  EditorState,
  Extension,
  Prec,
  Text
} from '@codemirror/state';
import { EditorView, ViewPlugin } from '@codemirror/view';

/** The magic line: `%%mixcv` alone or followed by options (`%%mixcv -o res`). */
const MAGIC_LINE = /^%%mixcv(\s|$)/;

/**
 * Whether a cell is a `%%mixcv` cell, judged as IPython judges it.
 *
 * IPython drops leading blank lines before it looks for a cell magic
 * (`IPython.core.inputtransformer2.leading_empty_lines`), so they are skipped here too.
 */
export function isMixcvCell(doc: Text): boolean {
  for (let i = 1; i <= doc.lines; i++) {
    const text = doc.line(i).text;
    if (text.trim() !== '') {
      return MAGIC_LINE.test(text);
    }
  }
  return false;
}

/**
 * The CodeMirror extension for one editor: YAML while the cell is a `%%mixcv` cell.
 *
 * @param yaml - JupyterLab's YAML language support (from its language registry).
 */
export function mixcvYaml(yaml: Extension): Extension {
  // One compartment per editor, empty (the notebook's language rules) or holding YAML.
  const compartment = new Compartment();
  // The `language` facet takes its highest-precedence value, so YAML here beats the
  // Python the notebook configures, without touching the cell model's MIME type (which
  // the notebook resets for every cell when the kernel's language is known).
  const highlighted = Prec.highest(yaml);
  const isOn = (state: EditorState) => compartment.get(state) === highlighted;
  const effect = (on: boolean) =>
    compartment.reconfigure(on ? highlighted : []);

  // Every edit (typed, pasted, or from a collaborator) is checked against the first line.
  const follow = EditorState.transactionExtender.of(tr => {
    if (!tr.docChanged) {
      return null;
    }
    const wanted = isMixcvCell(tr.newDoc);
    return wanted === isOn(tr.startState) ? null : { effects: effect(wanted) };
  });

  // The extension is built before the editor holds its text, so a cell opened with a
  // `%%mixcv` body is switched once the view exists (a dispatch inside the view's own
  // construction is not allowed, hence the microtask).
  const opening = ViewPlugin.define((view: EditorView) => {
    let live = true;
    queueMicrotask(() => {
      const wanted = isMixcvCell(view.state.doc);
      if (live && wanted !== isOn(view.state)) {
        view.dispatch({ effects: effect(wanted) });
      }
    });
    return {
      destroy: () => {
        live = false;
      }
    };
  });

  return [compartment.of([]), follow, opening];
}

/**
 * The plugin: loads JupyterLab's YAML language once and gives every inline editor the
 * extension above.
 */
const plugin: JupyterFrontEndPlugin<void> = {
  id: 'mixcv-jupyter:yaml-cells',
  description: 'Highlights the body of a %%mixcv cell as YAML.',
  autoStart: true,
  requires: [IEditorExtensionRegistry, IEditorLanguageRegistry],
  activate: async (
    app: JupyterFrontEnd,
    extensions: IEditorExtensionRegistry,
    languages: IEditorLanguageRegistry
  ): Promise<void> => {
    const yaml = await languages.getLanguage('yaml');
    if (!yaml?.support) {
      console.warn('mixcv-jupyter: JupyterLab has no YAML language; %%mixcv cells stay Python.');
      return;
    }
    const support = yaml.support;
    extensions.addExtension({
      name: 'mixcv-jupyter:yaml-cells',
      // Inline editors are cells and console prompts; a file keeps its own language.
      factory: options =>
        options.inline
          ? EditorExtensionRegistry.createImmutableExtension(mixcvYaml(support))
          : null
    });
  }
};

export default plugin;
