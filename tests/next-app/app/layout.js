import './globals.css';
import Providers from './providers';

export const metadata = { title: 'sloprobe next fixture' };

export default function RootLayout({ children }) {
  return (
    <html lang="en">
      <body>
        <Providers>{children}</Providers>
      </body>
    </html>
  );
}
