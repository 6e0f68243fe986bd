// Network access from a React component (TSX).
import { useEffect, useState } from "react";
import axios from "axios";

export function Items({ url }: { url: string }) {
  const [items, setItems] = useState<string[]>([]);
  useEffect(() => {
    fetch(url) // HIT
      .then((r) => r.json())
      .then(setItems);
  }, [url]);
  const refresh = async () => setItems((await axios.get<string[]>(url)).data); // HIT
  return (
    <ul onClick={() => fetch("/api/click", { method: "POST" })}> {/* HIT */}
      <li onClick={() => fetch("/api/first")}>first</li> {/* HIT */}
      {items.map((i) => (
        <li key={i} onClick={() => fetch(`/api/items/${i}`)}> {/* HIT */}
          {i}
        </li>
      ))}
      <button onClick={refresh}>fetch("/api") is text here</button>
    </ul>
  );
}
