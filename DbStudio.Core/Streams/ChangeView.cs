// What one subscriber may see of a change, and the SSE frame it gets: the same policies as GET (evaluated on the row's
// owner column in process), deletes only for those who could read the old row, and an update that takes a row out of
// someone's view reaching them as a delete.
using System.Buffers;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using DbStudio.Core.Access;
using DbStudio.Core.Platform;
using DbStudio.Core.Rest;

namespace DbStudio.Core.Streams;

/// <summary>One committed change as the log holds it (record and old_record are whole rows).</summary>
public sealed class Change(long id, string schema, string table, char op, JsonElement? record, JsonElement? oldRecord, DateTimeOffset committedAt)
{
    public long Id { get; } = id;
    public string Schema { get; } = schema;
    public string Table { get; } = table;
    /// <summary>i, u or d.</summary>
    public char Op { get; } = op;
    public JsonElement? Record { get; } = record;
    public JsonElement? OldRecord { get; } = oldRecord;
    public DateTimeOffset CommittedAt { get; } = committedAt;

    // Frames are built once per change and shared by every subscriber that gets them. Arrays, not Memory<byte>: the
    // fan-out threads read and set these at the same time, and only a reference is read or written in one piece
    // (a torn Memory<byte> once sent an empty frame in place of an event).
    internal byte[]? Frame;
    internal byte[]? DeleteFrame;
}

/// <summary>A subscriber's reading rights on one table: the caller, the table's access settings and the stream's filters.</summary>
public sealed class ChangeView(RestCaller caller, TableInfo table, RowFilter filter)
{
    public RestCaller Caller { get; } = caller;
    public TableInfo Table { get; } = table;
    public RowFilter Filter { get; } = filter;

    /// <summary>Whether this caller can read any row of the table under <paramref name="s"/> (else the stream is refused).</summary>
    public static bool CanReadAny(RestCaller caller, AccessSettings s) => caller.Kind switch
    {
        CallerKind.Admin => true,
        CallerKind.Anon => s.anon_select,
        _ => s.anon_select || s.auth_select_own && (caller.UserRole == EndUserRoles.Admin || s.user_id_col is not null),
    };

    /// <summary>Row-level: the RLS policies of AccessPolicies.GenerateSql, for one row.</summary>
    public bool MayRead(JsonElement row, AccessSettings s)
    {
        switch (Caller.Kind)
        {
            case CallerKind.Admin: return true;
            case CallerKind.Anon: return s.anon_select;
        }
        if (s.anon_select) return true;
        if (!s.auth_select_own) return false;
        if (Caller.UserRole == EndUserRoles.Admin) return true;
        return s.user_id_col is { } col && row.TryGetProperty(col, out var owner) && owner.ValueKind == JsonValueKind.String
            && Caller.UserId is { } me && Guid.TryParse(owner.GetString(), out var id) && id == me;
    }

    private bool Sees(JsonElement? row, AccessSettings s) => row is { } r && MayRead(r, s) && Filter.Matches(r);

    /// <summary>The frame for this subscriber, or null when the change is none of its business.</summary>
    public StreamFrame? FrameFor(Change c, AccessSettings s)
    {
        switch (c.Op)
        {
            case 'i':
                return Sees(c.Record, s) ? new StreamFrame(c.Id, c.Frame ??= Build(c, s, asDelete: false), c, false) : null;
            case 'u':
                if (Sees(c.Record, s)) return new StreamFrame(c.Id, c.Frame ??= Build(c, s, asDelete: false), c, false);
                // The row left this subscriber's view: for it, the row is gone.
                return Sees(c.OldRecord, s) ? new StreamFrame(c.Id, c.DeleteFrame ??= Build(c, s, asDelete: true), c, true) : null;
            default:
                return Sees(c.OldRecord, s) ? new StreamFrame(c.Id, c.Frame ??= Build(c, s, asDelete: false), c, false) : null;
        }
    }

    private static readonly JsonWriterOptions WriterOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>id/event/data lines of DESIGN §6. old_record carries the old row's key and owner column only.</summary>
    private byte[] Build(Change c, AccessSettings s, bool asDelete)
    {
        var type = asDelete || c.Op == 'd' ? "DELETE" : c.Op == 'i' ? "INSERT" : "UPDATE";
        var buffer = new ArrayBufferWriter<byte>(256);
        buffer.Write(Encoding.UTF8.GetBytes($"id: {c.Id}\nevent: {type.ToLowerInvariant()}\ndata: "));
        using (var w = new Utf8JsonWriter(buffer, WriterOptions))
        {
            w.WriteStartObject();
            w.WriteString("type", type);
            w.WriteString("table", c.Table);
            w.WriteString("schema", c.Schema);
            w.WritePropertyName("record");
            if (type != "DELETE" && c.Record is { } rec) rec.WriteTo(w);
            else w.WriteNullValue();
            w.WritePropertyName("old_record");
            var old = asDelete ? c.OldRecord : c.Op == 'i' ? null : c.OldRecord;
            if (old is { } o)
            {
                w.WriteStartObject();
                foreach (var p in o.EnumerateObject())
                    if (Table.Find(p.Name) is { IsPrimaryKey: true } || p.Name == s.user_id_col || Table.PrimaryKey.Count == 0)
                        p.WriteTo(w);
                w.WriteEndObject();
            }
            else w.WriteNullValue();
            w.WriteString("commit_timestamp", c.CommittedAt.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'"));
            w.WriteEndObject();
        }
        buffer.Write("\n\n"u8);
        return buffer.WrittenSpan.ToArray();
    }
}
