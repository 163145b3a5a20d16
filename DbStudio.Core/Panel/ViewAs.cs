// "View as" in the Data tab: the table as the ANON key, a chosen end user or the DB_API_KEY (admin) would get it through
// the REST API — the same logins, role and request.* claims (RestCaller), so PostgreSQL's RLS decides the rows — and which
// of the Access tab's policies decided it, to answer "why can't they see this row".
using DbStudio.Core.Access;
using DbStudio.Core.Auth;

namespace DbStudio.Core.Panel;

/// <summary>Who the Data tab shows the table as. <see cref="Admin"/> is the panel's own view (and the only one that edits).</summary>
public sealed record ViewAs(CallerKind Kind, Guid? UserId = null, string? Email = null, string? Role = null)
{
    public static readonly ViewAs Admin = new(CallerKind.Admin);
    public static readonly ViewAs Anon = new(CallerKind.Anon);

    public static ViewAs User(EndUserInfo user) => new(CallerKind.User, user.id, user.email, user.role);

    public bool IsAdmin => Kind == CallerKind.Admin;

    public RestCaller Caller(string projectId) => new(projectId, Kind, UserId, Role);

    public string Label => Kind switch
    {
        CallerKind.Anon => "ANON key",
        CallerKind.User => $"{Email} ({Role})",
        _ => "admin (DB_API_KEY)",
    };

    /// <summary>The policies that decide what this caller reads of a table with these Access settings.</summary>
    public IReadOnlyList<string> Policies(AccessSettings? s)
    {
        if (IsAdmin) return ["DB_API_KEY: runs as the project owner, every policy bypassed — all rows."];
        if (s is null) return ["No Access settings for this table yet."];
        var lines = new List<string>();
        lines.Add(s.anon_select
            ? "anon_select (policy dbstudio_anon_select): every row is public — to the ANON key and to every signed-in user."
            : "anon_select is off: the ANON key reads no row" + (Kind == CallerKind.Anon ? " — so nothing shows here." : "."));
        if (Kind == CallerKind.Anon) return lines;
        if (Role == Platform.EndUserRoles.Admin)
            lines.Add(s.auth_select_own
                ? "End user with role admin (policy dbstudio_admin_select): own-row filters do not apply — every row."
                : "auth_select_own is off: signed-in users, admins included, read no row through it.");
        else if (!s.auth_select_own)
            lines.Add("auth_select_own is off: signed-in users read no row of their own through it.");
        else if (s.user_id_col is null)
            lines.Add("auth_select_own is on, but no owner column is set: a user owns no row.");
        else
            lines.Add($"auth_select_own (policy dbstudio_auth_select_own): rows whose {s.user_id_col} is this user's id ({UserId}).");
        return lines;
    }
}
