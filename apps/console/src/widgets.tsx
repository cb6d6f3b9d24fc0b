/** Small shared pieces: the problem box, a file drop zone. */
import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';
import type { Explained } from './api.ts';

/** An error in plain words; the box is always there so that screen readers announce what appears in it. */
export function Problem({ id, problem }: { readonly id: string; readonly problem: Explained | null }) {
  return (
    <div id={id} class={problem === null ? 'problem empty' : 'problem'} role="alert">
      {problem === null ? null : (
        <>
          <strong>{problem.title}.</strong> {problem.detail}
        </>
      )}
    </div>
  );
}

export interface DropZoneProps {
  readonly onFile: (file: File) => void;
  readonly children: ComponentChildren;
}

/** Accepts a file dropped anywhere on it; the file input inside it is the keyboard route. */
export function DropZone({ onFile, children }: DropZoneProps) {
  const [over, setOver] = useState(false);
  return (
    <fieldset
      class={over ? 'drop-zone over' : 'drop-zone'}
      onDragOver={(event) => {
        event.preventDefault();
        setOver(true);
      }}
      onDragLeave={() => setOver(false)}
      onDrop={(event) => {
        event.preventDefault();
        setOver(false);
        const file = event.dataTransfer?.files[0];
        if (file !== undefined) onFile(file);
      }}
    >
      {children}
    </fieldset>
  );
}

/** Saves text as a file through a temporary object URL. */
export function download(name: string, type: string, content: string): void {
  const url = URL.createObjectURL(new Blob([content], { type }));
  const link = document.createElement('a');
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
