// "View as" in the Data tab and the SQL tab: the table (or a SELECT) as the ANON key, a chosen end user or the DB_API_KEY
// (admin) would get it through the REST API — the same logins, role and request.* claims (RestCaller), so PostgreSQL's
// RLS decides the rows — and what decided it, to answer "why can't they see this row": the Access tab's settings in
// words and the hand-written policies that apply to the caller's role (ViewAsPolicies).
using DbStudio.Core.Access;
using DbStudio.Core.Auth;
using DbStudio.Core.Projects;
using DbStudio.Core.Rest;

namespace DbStudio.Core.Panel;

/// <summary>Who the Data tab shows the table as. <see cref="Admin"/> is the panel's own view (and the only one that edits).</summary>
public sealed record ViewAs(CallerKind Kind, Guid? UserId = null, string? Email = null, string? Role = null)
{
    public static readonly ViewAs Admin = new(CallerKind.Admin);
    public static readonly ViewAs Anon = new(CallerKind.Anon);

    public static ViewAs User(EndUserInfo user) => new(CallerKind.User, user.id, user.email, user.role);

    public bool IsAdmin => Kind == CallerKind.Admin;

    public RestCaller Caller(string projectId) => new(projectId, Kind, UserId, Role);

    /// <summary>The project role the caller's requests act as (proj_{id}_anon, _user, _user_admin or _owner).</summary>
    public string ActingRole(string projectId) => RestConnections.ActingRole(projectId, RestExecutor.RoleOf(Caller(projectId)));

    /// <summary>The value of a picker's option: admin, anon, or the end user's id.</summary>
    public string Key => Kind switch
    {
        CallerKind.Anon => "anon",
        CallerKind.User => UserId.ToString()!,
        _ => "admin",
    };

    /// <summary>The caller a picker's option stands for; null for an end user no longer in <paramref name="users"/>.</summary>
    public static ViewAs? FromKey(string? key, IEnumerable<EndUserInfo> users) => key switch
    {
        "admin" => Admin,
        "anon" => Anon,
        _ => users.FirstOrDefault(u => u.id.ToString() == key) is { } user ? User(user) : null,
    };

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

    /// <summary>
    /// Everything that decides what this caller reads of <paramref name="table"/>: the Access settings in words, and the
    /// hand-written policies for reading that apply to its role — none when row-level security is off, nor for the
    /// DB_API_KEY unless the table forces row-level security on its owner too.
    /// </summary>
    public ViewAsWhy Why(string table, AccessSettings? settings, TableRls rls)
    {
        if (IsAdmin)
            return rls is { Enabled: true, Forced: true }
                ? new(table, ["DB_API_KEY: runs as the project owner — but the table forces row-level security on its owner (FORCE ROW LEVEL SECURITY), so the owner's policies below decide."], rls.Policies)
                : new(table, Policies(null), []);
        if (!rls.Enabled)
            return new(table, ["Row-level security is off on this table: the role reads every row its privileges reach, whatever the policies."], []);
        return new(table, Policies(settings), rls.Policies);
    }
}

/// <summary>What decides what a caller reads of one table: the Access settings in words, and the hand-written policies that
/// apply to its role (permissive ones OR-ed with the Access tab's, restrictive ones AND-ed on top).</summary>
public sealed record ViewAsWhy(string Table, IReadOnlyList<string> Lines, IReadOnlyList<HandWrittenPolicy> HandWritten);

/// <summary>Reads what decides a view-as: the Access settings (secure defaults applied on first sight) and the table's
/// hand-written policies, on the project owner's login.</summary>
public sealed class ViewAsPolicies(AccessPolicies access, HandWrittenPolicies handWritten)
{
    /// <summary>Why <paramref name="viewer"/> reads what it reads of <paramref name="table"/>; null when there is no such table.</summary>
    public async Task<ViewAsWhy?> ForAsync(string projectId, ViewAs viewer, string table, CancellationToken ct = default)
    {
        var rls = await handWritten.ForReadingAsync(projectId, table, viewer.ActingRole(projectId), ct);
        if (rls is null) return null;
        var settings = viewer.IsAdmin ? null : await access.GetAsync(projectId, table, ct);
        return viewer.Why(table, settings, rls);
    }
}
