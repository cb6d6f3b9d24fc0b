/**
 * How a chat becomes the embedded model's prompt. The n-gram model was trained on plain prose and knows no
 * roles, so the prompt text is each message's text in order, separated by a blank line, followed by a blank
 * line: the completion continues as the next paragraph. Roles are not written into the text. (An upstream
 * backend receives the messages themselves and applies its own chat template.)
 */
import { badRequest } from './errors.ts';

export type MessageContent = string | null | readonly { readonly type: string; readonly text?: string }[];

export interface RequestMessage {
  readonly role: string;
  readonly content?: MessageContent;
}

/** The text of a message: a string, or the concatenated text parts. Images and audio are refused. */
export function messageText(message: RequestMessage, index: number): string {
  const content = message.content;
  if (content === undefined || content === null) return '';
  if (typeof content === 'string') return content;
  return content
    .map((part, partIndex) => {
      if (part.type !== 'text' || typeof part.text !== 'string') {
        throw badRequest(
          'TM_ERR_UNSUPPORTED_PARAMETER',
          `messages[${index}].content[${partIndex}]: only text parts are supported, got "${part.type}"`,
          `messages[${index}].content`,
        );
      }
      return part.text;
    })
    .join('');
}

export const CHAT_SEPARATOR = '\n\n';

export function formatChatPrompt(messages: readonly { readonly content: string }[]): string {
  const texts = messages.map((message) => message.content).filter((text) => text !== '');
  return texts.length === 0 ? '' : `${texts.join(CHAT_SEPARATOR)}${CHAT_SEPARATOR}`;
}
